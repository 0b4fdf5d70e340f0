import { createRouter, createWebHistory } from 'vue-router'
import { auth, can } from './lib/api'
import Login from './views/Login.vue'
import Fleet from './views/Fleet.vue'

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/login', name: 'login', component: Login, meta: { public: true, title: 'Sign in' } },
    { path: '/', name: 'fleet', component: Fleet, meta: { title: 'Fleet' } },
    { path: '/services/:name', name: 'service', component: () => import('./views/Service.vue'), meta: { title: 'Service' } },
    { path: '/history', name: 'history', component: () => import('./views/History.vue'), meta: { title: 'History' } },
    { path: '/services/:name/history', name: 'service-history', component: () => import('./views/History.vue'), meta: { title: 'History' } },
    { path: '/profiles', name: 'profiles', component: () => import('./views/Profiles.vue'), meta: { title: 'Profiles' } },
    { path: '/restore', name: 'restore', component: () => import('./views/Restore.vue'), meta: { title: 'Fleet restore', admin: true } },
    { path: '/tokens', name: 'tokens', component: () => import('./views/Tokens.vue'), meta: { title: 'Tokens', admin: true } },
    { path: '/audit', name: 'audit', component: () => import('./views/Audit.vue'), meta: { title: 'Audit log', admin: true } },
    { path: '/:rest(.*)*', name: 'missing', component: () => import('./views/NotFound.vue'), meta: { title: 'Not found' } },
  ],
})

router.beforeEach((to) => {
  if (!to.meta.public && !auth.session) {
    return { name: 'login', query: to.fullPath !== '/' ? { next: to.fullPath } : {} }
  }
  if (to.meta.admin && !can('admin')) return { name: 'fleet' }
})

router.afterEach((to, from) => {
  // After an in-app navigation, keyboard and screen-reader users start at the new page's
  // content rather than wherever focus was (a page that focuses a field moves it on later).
  if (from.matched.length) {
    requestAnimationFrame(() => {
      const main = document.getElementById('main')
      if (main && !main.contains(document.activeElement)) main.focus({ preventScroll: true })
    })
  }
  const name = typeof to.params.name === 'string' ? `${to.params.name} · ` : ''
  document.title = `${name}${String(to.meta.title ?? '')} — dials`
})
